"""Learned models: ensembles, trainers, learned-model adapters, frame models."""
