#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules that carry the guarantees, one module at a time, each
# against the fast tests that cover it. Not part of the test command: minutes per module on two
# cores. Results: tests/MUTATION.md (score, and the surviving mutants judged harmless).
#   bash scripts/mutation.sh                 # parse client recovery tables
#   bash scripts/mutation.sh client          # one module; then `cd .mutation/client && mutmut results`
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh mutation
declare -A FILE=(
  [parse]=sources/docusign_billing/parse.py
  [client]=sources/docusign_billing/client.py
  [recovery]=pipelines/recovery.py
  [tables]=sources/docusign_billing/tables.py
)
# The in-process tests that exercise each module (tests that run the console script in a
# subprocess import the unmutated code, so they cannot kill a mutant).
declare -A TESTS=(
  [parse]="tests/test_parse.py"
  [client]="tests/test_client.py tests/test_http.py::test_429_waits_as_the_headers_say tests/test_http.py::test_rejected_credentials tests/test_http.py::test_user_without_admin_rights tests/test_http.py::test_unreachable_host"
  [recovery]="tests/test_interrupted.py::test_restart_redoes_staging_jobs_and_leaves_append_jobs tests/test_interrupted.py::test_restart_deletes_the_appended_rows_of_the_package_first_and_redoes_their_jobs tests/test_interrupted.py::test_package_whose_jobs_all_recorded_an_outcome_is_left_to_dlt tests/test_interrupted.py::test_package_with_refresh_is_left_to_dlt tests/test_interrupted.py::test_restart_killed_at_any_step_is_finished_by_the_next_run tests/test_interrupted.py::test_stale_extracted_copy_is_removed_only_once_its_package_moved_on tests/test_interrupted.py::test_atomic_write_leftovers_are_removed_and_packages_kept"
  [tables]="tests/test_parse.py tests/test_batches.py"
)
MUTMUT="$PWD/.venv/bin/mutmut"
for module in "${@:-parse client recovery tables}"; do
  [ -n "${FILE[$module]:-}" ] || { echo "mutation: unknown module $module" >&2; exit 2; }
  work=".mutation/$module"
  rm -rf "$work" && mkdir -p "$work"
  cp -r sources pipelines tests pyproject.toml "$work/"
  find "$work" -name __pycache__ -prune -exec rm -rf {} +
  {
    echo "[mutmut]"
    echo "source_paths ="
    echo "    sources"
    echo "    pipelines"
    echo "only_mutate = ${FILE[$module]}"
    echo "pytest_add_cli_args_test_selection ="
    for arg in ${TESTS[$module]}; do echo "    $arg"; done
  } > "$work/setup.cfg"
  (cd "$work" && nice -n 10 "$MUTMUT" run --max-children 2 > run.log 2>&1 || true)
  echo "== $module: ${FILE[$module]}"
  (cd "$work" && "$MUTMUT" results --all true 2>/dev/null | awk '{print $NF}' | sort | uniq -c)
  (cd "$work" && "$MUTMUT" results)   # the survivors, one name each: `mutmut show NAME`
done
