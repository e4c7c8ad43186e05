"""Files to layer tables: readers per format, validation, and COPY (see pipeline.upload)."""
