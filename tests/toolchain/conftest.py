import pytest
from amaranth.back import verilog


@pytest.fixture(scope="session")
def verilog_of(tmp_path_factory):
    """Write an Amaranth component's Verilog to a temp file; returns the path."""
    folder = tmp_path_factory.mktemp("verilog")

    def convert(component, name):
        path = folder / f"{name}.v"
        path.write_text(verilog.convert(component, name=name))
        return path

    return convert
