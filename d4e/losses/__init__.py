"""d4e.losses"""
