"""jobdeck's terminal dashboard (Textual). The only package that imports Textual."""
