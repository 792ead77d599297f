"""WordNet 3.0, the synset hierarchy ImageNet indexes, and the synsets stage."""
