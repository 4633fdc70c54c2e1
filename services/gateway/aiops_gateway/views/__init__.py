"""How the API shows stored records: response models and the pure shaping of stored bodies into them."""
