# `sam build` runs one target per function (each has `Metadata: BuildMethod: makefile`), in the
# source directory (samconfig.toml: build_in_source). All five functions hold the same code:
# scripts/lambda_build.py builds it byte-compiled, which SAM's own Python builder does not do.
# RUNTIME and PLATFORM follow template.yaml's Globals (Runtime python3.11, Architectures arm64);
# tests/test_template.py checks that they agree.
# EXTRAS: pyproject extras to install too, e.g. `EXTRAS=tracing sam build` (TraceSubsegments).
PYTHON ?= python3.11
EXTRAS ?=
RUNTIME := 3.11
PLATFORM := manylinux2014_aarch64
FUNCTIONS := WorkflowTaskFunction ActivityTaskFunction TimerFunction EventsFunction ApiFunction

.PHONY: $(addprefix build-,$(FUNCTIONS))
$(addprefix build-,$(FUNCTIONS)):
	$(PYTHON) scripts/lambda_build.py --artifacts "$(ARTIFACTS_DIR)" --python-version $(RUNTIME) --platform $(PLATFORM) \
		--extras "$(EXTRAS)"
