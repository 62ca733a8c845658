"""d4e.render.raster"""
