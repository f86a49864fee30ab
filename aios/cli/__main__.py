from aios.cli.main import app

app(prog_name="aios")
