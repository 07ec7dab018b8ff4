"""The notebook's MLP, built from a spec: pure Keras, no data."""
