"""The only torch code: resolving and loading models, the tiny zoo, datasets, the training loop, one point, and the NTK probe."""
