{{ cookiecutter.description | sentence | quoted }}
