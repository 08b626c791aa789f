"""Training: the loss-computing Keras model, optimizer and schedule, precision, callbacks."""
