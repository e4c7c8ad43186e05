"""Getting addresses into the library: bulk import of files (CSV, GeoJSON) and the demo
generator."""
