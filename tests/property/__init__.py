"""Property and fuzz tests of the sans-IO decoders and codecs (hypothesis)."""
