"""d4e.data"""
