{{ cookiecutter.description | quoted }}
