# fxmm entry points. `make demo` and `make test` each work on a fresh machine (they set up
# ./.venv first; a second run reuses it and the cached mmcv wheel).
PY := .venv/bin/python
PHANTOMS ?= data/phantoms
PHANTOM_ARGS ?= --seed 0 --num-train 800 --num-val 96 --num-test 96 --lesion-size 2.5 --lesion-contrast 4
WORK_DIR ?= work_dirs/foundation_x_demo
PYTEST_ARGS ?=

.PHONY: setup demo phantoms test clean

setup:
	bash tools/setup.sh

phantoms: setup
	$(PY) -m data_converters.synthetic --out $(PHANTOMS) $(PHANTOM_ARGS)

# Train the demo model on the synthetic phantoms, then evaluate it on their test split and
# write the results table to $(WORK_DIR)/test/test_results/results.md.
demo: setup
	@[ -d $(PHANTOMS)/phantom_cls ] || $(PY) -m data_converters.synthetic --out $(PHANTOMS) $(PHANTOM_ARGS)
	$(PY) tools/train.py configs/foundation_x_demo.py --work-dir $(WORK_DIR)
	$(PY) tools/test.py configs/foundation_x_demo.py "$$(cat $(WORK_DIR)/last_checkpoint)" \
		--work-dir $(WORK_DIR)/test

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf work_dirs fxmm/.mim build *.egg-info
