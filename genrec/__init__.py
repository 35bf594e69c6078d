"""genrec: generative sequential recommendation with semantic IDs."""
from genrec.models.recommender import GenerativeRecommender

__version__ = "0.1.0"
__all__ = ["GenerativeRecommender"]
