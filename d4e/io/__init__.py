"""d4e.io"""
