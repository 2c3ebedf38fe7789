"""OCF-B (One-Class problem Free Boosting, Song & Song 2022) for neural collaborative filtering.

The core library: data, negative sampling, GMF / MLP / NeuMF (He et al. 2017), training, the
OCF-B loop and its evaluation protocols. It never imports Ray or W&B; `suite` adapts it.
"""

__version__ = "0.1.0"
