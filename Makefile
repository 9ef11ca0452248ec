# Two commands do all set-up on a fresh Debian machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.chronotope-installed
# Shared libraries the wheels load: Open3D needs libusb, MuJoCo's headless renderer needs EGL/GL.
SYS_LIBS := libusb-1.0.so.0 libEGL.so.1 libEGL_mesa.so.0 libGL.so.1 libgomp.so.1
SYS_PKGS := libusb-1.0-0 libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgomp1
PYTEST_ARGS ?=

.PHONY: all demo test test-slow lint bench sysdeps install clean

all: test

sysdeps:
	@missing=""; for lib in $(SYS_LIBS); do ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages ($$missing missing): $(SYS_PKGS)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYS_PKGS) >/dev/null; \
	  else \
	    echo "missing system libraries:$$missing"; \
	    echo "run: sudo apt-get update && sudo apt-get install -y $(SYS_PKGS)"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml setup.py | sysdeps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the CPU build (2.13.0): installing it first keeps pip from pulling a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,mjwarp,m3]'
	touch $(STAMP)

install: sysdeps $(STAMP)

test: install
	CI=$${CI:-} $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc = 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

demo: install
	MUJOCO_GL=$${MUJOCO_GL:-egl} $(VENV)/bin/chronotope demo

bench: install
	$(VENV)/bin/chronotope bench all --quick

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs/bench build *.egg-info
