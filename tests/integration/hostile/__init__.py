"""The hostile and broken submissions corpus (issue 7): each case writes itself into a folder of entries."""
