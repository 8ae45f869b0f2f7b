"""Code hashes from the import graph: which sources each command's jobs depend on."""

from rlopt.provenance import COMMANDS, PACKAGE_ROOT, module_closure


def closure(module: str) -> set[str]:
    return {str(path.relative_to(PACKAGE_ROOT)) for path in module_closure(module)}


def test_train_closure_follows_lazy_imports_and_stops_at_optimizer_modules():
    files = closure(COMMANDS["train"])
    # imported inside functions (lazily), and the package data the registry reads
    assert {"training.py", "agents/ppo.py", "envs/gymnax_env.py", "envs/ppo_defaults.yaml", "io.py"} <= files
    # the optimizer contract is shared; each optimizer is hashed on its own
    assert {"optimizers/__init__.py", "optimizers/base.py", "optimizers/learned.py"} <= files
    assert not {"optimizers/open.py", "optimizers/handcrafted.py"} & files


def test_an_optimizer_closure_holds_its_module_its_settings_and_the_contract_only():
    assert closure("rlopt.optimizers.open") == {
        "optimizers/__init__.py",
        "optimizers/base.py",
        "optimizers/learned.py",
        "optimizers/open.py",
        "optimizers/open_settings.py",
    }
    assert {"optimizers/handcrafted.py", "optimizers/handcrafted_settings.py"} <= closure(
        "rlopt.optimizers.handcrafted"
    )
    # the registry's light settings modules belong to their optimizer, not to every command
    assert not {"optimizers/handcrafted_settings.py", "optimizers/open_settings.py"} & closure(COMMANDS["train"])


def test_figures_depend_on_the_analysis_code_they_import():
    files = closure(COMMANDS["plots"])
    assert {"plots/figures.py", "plots/commands.py", "analysis/commands.py"} <= files
