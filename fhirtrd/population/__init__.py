"""Population classify: a whole export split into patient-hash buckets on disk, classified in parallel."""
