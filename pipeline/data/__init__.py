"""Datasets as uint8 images and integer labels, and where their arrays come from."""
