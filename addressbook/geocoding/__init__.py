"""Reading addresses: the parser and its dictionary, geocoding (one text or a batch),
suggestions and reverse geocoding."""
