"""The notebook's MLP and its replica form, built from a spec: pure Keras, no data."""
