"""d4e.train"""
