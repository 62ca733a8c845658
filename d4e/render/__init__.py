"""d4e.render"""
