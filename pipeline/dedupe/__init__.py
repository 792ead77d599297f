"""The dedupe stage: perceptual hashes, exact and near-duplicate clusters, the split guard."""
