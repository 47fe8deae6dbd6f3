# The summary of tests/compare/alternatives.sh (sourced, bash).
print_table() {
    cat "$OUT/facts.txt" "$OUT/sessions.tsv" "$OUT/sudo.txt" "$OUT/logind.log" "$OUT/vigil.log" "$OUT/sshd.log" "$OUT/reauth.log"
    for p in 2200 2201 2202; do echo "$p $(cat "$OUT/cost-$p.median")"; done
}
