"""The embedding cache: key grammar, stored format, the Redis store and single flight over it."""
