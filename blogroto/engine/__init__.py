"""The engine: the only wing that runs TensorFlow/Keras (the network, VGG16 and its losses,
precision, tiled stylizing, training). `runtime` is its one import of TensorFlow; the rest of
blogroto reaches the engine only lazily, when a picture has to be painted or a filter trained."""
