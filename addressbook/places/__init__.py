"""Named places (地名 / 兴趣点): reading place files, checking and storing them, finding them."""
