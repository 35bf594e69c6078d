"""The CTR path: item fields from IDs, attributes and semantic-ID codes, and the backbone grid."""
