"""The engine: the only wing that runs Keras and its backend (the network, VGG16 and its losses,
precision, tiled stylizing, training). `runtime` is its one import of Keras and TensorFlow, and
holds what differs between the TensorFlow, PyTorch and JAX backends; the rest of blogroto
reaches the engine only lazily, when a picture has to be painted or a filter trained."""
