"""De-identification (PS3.15 Annex E): profiles, keyed substitutes, the dataset walk, audit."""
