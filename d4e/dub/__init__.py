"""d4e.dub"""
