"""Admin areas and grids: the import of the statistical divisions with their code history,
derived polygons, grids, reading areas, and the resolver of area names and codes."""
