"""d4e.audio"""
