"""d4e.tracking"""
