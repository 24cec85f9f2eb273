package fhirtrd.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.UnknownCodeSystemWarningValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * The HL7 validation engine (org.hl7.fhir.validation through HAPI's validation support chain), offline:
 * R4 core definitions from hapi-fhir-validation-resources-r4, plus the CodeSystems and ValueSets in
 * TERMINOLOGY_DIR, plus (optionally) those of an unpacked HL7 terminology package (hl7.terminology.r4,
 * whose copies of the terminology.hl7.org CodeSystems are newer than the R4 core package's and win over
 * them). External code systems (SNOMED CT, LOINC, RxNorm) cannot be checked offline: an unknown system is
 * a warning, never an error.
 *
 * <p>Usage: java -Dloader.main=fhirtrd.hapi.Validate -jar fhirtrd-hapi.jar TERMINOLOGY_DIR FILE.ndjson
 * [HL7_TERMINOLOGY_PACKAGE_DIR]
 * Prints one line per message: severity TAB line-number TAB location TAB message-id TAB message;
 * then "validated N resources". Exit code 0 even with errors: the caller judges.
 */
public final class Validate {

	private Validate() {}

	public static void main(String[] args) throws IOException {
		if (args.length != 2 && args.length != 3) {
			System.err.println("usage: Validate TERMINOLOGY_DIR FILE.ndjson [HL7_TERMINOLOGY_PACKAGE_DIR]");
			System.exit(2);
		}
		FhirContext ctx = FhirContext.forR4();
		PrePopulatedValidationSupport own = new PrePopulatedValidationSupport(ctx);
		load(ctx, own, Paths.get(args[0]));
		// first in the chain: the HL7 terminology package's CodeSystems and ValueSets replace the
		// R4 core package's older copies of the same canonical URLs
		PrePopulatedValidationSupport hl7Terminology = new PrePopulatedValidationSupport(ctx);
		if (args.length == 3) {
			int loaded = load(ctx, hl7Terminology, Paths.get(args[2]));
			System.err.println("loaded " + loaded + " CodeSystems and ValueSets from " + args[2]);
		}
		UnknownCodeSystemWarningValidationSupport unknown = new UnknownCodeSystemWarningValidationSupport(ctx);
		unknown.setNonExistentCodeSystemSeverity(IValidationSupport.IssueSeverity.WARNING);
		ValidationSupportChain chain = new ValidationSupportChain(
				hl7Terminology,
				new DefaultProfileValidationSupport(ctx),
				own,
				new CommonCodeSystemsTerminologyService(ctx),
				new InMemoryTerminologyServerValidationSupport(ctx),
				new SnapshotGeneratingValidationSupport(ctx),
				unknown);
		FhirInstanceValidator module = new FhirInstanceValidator(chain);
		// references point at the source server's resources, which are not here to be resolved
		module.setAssumeValidRestReferences(true);
		FhirValidator validator = ctx.newValidator();
		validator.registerValidatorModule(module);

		PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
		int count = 0;
		int lineNo = 0;
		try (BufferedReader reader = Files.newBufferedReader(Paths.get(args[1]), StandardCharsets.UTF_8)) {
			String line;
			while ((line = reader.readLine()) != null) {
				lineNo++;
				if (line.isBlank()) {
					continue;
				}
				count++;
				ValidationResult result = validator.validateWithResult(line);
				for (SingleValidationMessage m : result.getMessages()) {
					out.println(String.join("\t",
							m.getSeverity().getCode(),
							Integer.toString(lineNo),
							String.valueOf(m.getLocationString()),
							String.valueOf(m.getMessageId()),
							String.valueOf(m.getMessage()).replace('\t', ' ').replace('\n', ' ')));
				}
			}
		}
		out.println("validated " + count + " resources");
	}

	/** Adds every CodeSystem-*.json and ValueSet-*.json of DIR to SUPPORT; returns how many. */
	private static int load(FhirContext ctx, PrePopulatedValidationSupport support, Path dir) throws IOException {
		int count = 0;
		try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "{CodeSystem,ValueSet}-*.json")) {
			for (Path file : files) {
				IBaseResource resource = ctx.newJsonParser().parseResource(Files.readString(file));
				String type = ctx.getResourceType(resource);
				if ("CodeSystem".equals(type)) {
					support.addCodeSystem(resource);
					count++;
				} else if ("ValueSet".equals(type)) {
					support.addValueSet(resource);
					count++;
				}
			}
		}
		return count;
	}
}
