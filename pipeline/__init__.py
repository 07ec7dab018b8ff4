"""Does neuron dropout make a small Keras MLP better? Tracked, tuned and tested with MLflow."""
