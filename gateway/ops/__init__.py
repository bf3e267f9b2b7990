"""Operations: the daemon's own configuration and the carrier profiles it loads at start.

Both are TOML files validated in full before anything starts; every error is one
``schema.ConfigError`` naming the file, the dotted key, what was expected and what was found.
"""
