"""The status page, its API and who may use them."""
