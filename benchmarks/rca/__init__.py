"""Root-cause analysis benchmarks: the engine beside its peers on CIRCA's simulator, PetShop, our own simulator."""
