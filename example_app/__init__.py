"""A small signup app wired through hubbub: the seed article's scenarios."""
