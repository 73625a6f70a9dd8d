#!/usr/bin/env bash
# Mutation testing (mutmut) of the modules that carry the guarantees, one module at a time, each
# against the fast in-process tests that cover it. Not part of the test command: tens of minutes
# per module on two cores. Results: tests/MUTATION.md (score, and the surviving mutants judged
# harmless).
#   bash scripts/mutation.sh                       # parse client recovery tables
#   bash scripts/mutation.sh client                # one module; then `cd .mutation/client && mutmut results`
#   bash scripts/mutation.sh client 'sources.docusign_billing.client.xǁRateLimitGateǁ*'
#                                                  # only these mutants, afresh in .mutation/client-named
# MUTATION_NICE (default 19) and MUTATION_CHILDREN (default 1) keep it from crowding the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh mutation
declare -A FILE=(
  [parse]=sources/docusign_billing/parse.py
  [client]=sources/docusign_billing/client.py
  [recovery]=sources/docusign_billing/recovery.py
  [tables]=sources/docusign_billing/tables.py
)
# The in-process tests that exercise each module (tests that run the console script in a
# subprocess import the unmutated code, so they cannot kill a mutant). Every id must still
# exist: the script stops before mutating if one does not collect.
declare -A TESTS=(
  [parse]="tests/test_parse.py tests/test_tables.py"
  [client]="tests/test_client.py
    tests/test_http.py::test_burst_headers_slow_the_client_before_it_is_throttled
    tests/test_http.py::test_hourly_budget_spent_for_long_fails_fast_without_sending
    tests/test_http.py::test_pages_follow_next_uri_relative_or_absolute_on_the_same_host
    tests/test_faults.py::test_throttle_waits_are_capped"
  [recovery]="tests/test_recovery.py
    tests/test_interrupted.py::test_restart_redoes_staging_jobs_and_leaves_append_jobs
    tests/test_interrupted.py::test_restart_deletes_the_appended_rows_of_the_package_first_and_redoes_their_jobs
    tests/test_interrupted.py::test_package_whose_jobs_all_recorded_an_outcome_is_left_to_dlt
    tests/test_interrupted.py::test_package_with_refresh_is_left_to_dlt
    tests/test_interrupted.py::test_restart_killed_at_any_step_is_finished_by_the_next_run
    tests/test_interrupted.py::test_stale_extracted_copy_is_removed_only_once_its_package_moved_on
    tests/test_interrupted.py::test_atomic_write_leftovers_are_removed_and_packages_kept"
  [tables]="tests/test_tables.py tests/test_parse.py tests/test_resources.py"
)
MUTMUT="$PWD/.venv/bin/mutmut"
NICE="${MUTATION_NICE:-19}"
CHILDREN="${MUTATION_CHILDREN:-1}"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(parse client recovery tables)
module="${modules[0]}"
if [ ${#modules[@]} -gt 1 ] && [ -z "${FILE[${modules[1]}]:-}" ]; then
  names=("${modules[@]:1}")   # `client NAME...`: re-run these mutants of an existing run
  modules=("$module")
fi
for module in "${modules[@]}"; do
  [ -n "${FILE[$module]:-}" ] || { echo "mutation: unknown module $module" >&2; exit 2; }
  # shellcheck disable=SC2086
  .venv/bin/python -m pytest --collect-only -q -p no:randomly ${TESTS[$module]} > /dev/null \
    || { echo "mutation: a test selected for $module does not exist (scripts/mutation.sh)" >&2; exit 2; }
  work=".mutation/$module"
  # named mutants run in a folder of their own, from scratch: in an existing run mutmut 3.8
  # keeps earlier verdicts and coverage, so a test added since would not be run
  [ -z "${names[*]:-}" ] || work=".mutation/$module-named"
  rm -rf "$work" && mkdir -p "$work"
  cp -r sources pipelines tests pyproject.toml "$work/"
  find "$work" -name __pycache__ -prune -exec rm -rf {} +
  {
    echo "[mutmut]"
    echo "source_paths ="
    echo "    sources"
    echo "    pipelines"
    echo "only_mutate = ${FILE[$module]}"
    # a mutant that makes a test wait for ever (a gate that never admits) is cut at 5x the
    # tests' clean run time instead of mutmut's 15x: minutes per such mutant otherwise, and
    # mutmut's late SIGXCPU to a finished child's reused pid stays unlikely (tests/MUTATION.md)
    echo "timeout_multiplier = 5"
    echo "pytest_add_cli_args_test_selection ="
    for arg in ${TESTS[$module]}; do echo "    $arg"; done
  } > "$work/setup.cfg"
  (cd "$work" && nice -n "$NICE" "$MUTMUT" run --max-children "$CHILDREN" ${names[@]+"${names[@]}"} \
    >> run.log 2>&1 || true)
  echo "== $module: ${FILE[$module]}"
  # killed / survived / timeout / "no tests" (not reached by the selection) per mutant
  (cd "$work" && "$MUTMUT" results --all true 2>/dev/null | sed 's/.*: //' | sort | uniq -c)
  (cd "$work" && "$MUTMUT" results 2>/dev/null | grep -v ': no tests$' || true)   # `mutmut show NAME`
done
