# Sourced by the server benchmarks (bench-grpc.sh, bench-observability.sh):
# builds the release modelctl and load generator, makes a registry in $out
# with the golden 100-tree linfa forest (20 features) at
# golden_forest@production, and writes one single-row request to $out/row.json.
# Expects $out; sets $modelctl, $loadgen and $reg.
rm -rf "$out"
mkdir -p "$out"
cargo build --release -p model-persistence-cli
cargo build --release -p model-persistence-server --example loadgen
modelctl=target/release/modelctl
loadgen=target/release/examples/loadgen
reg="$out/registry"
"$modelctl" --registry "$reg" init >/dev/null
"$modelctl" --registry "$reg" publish tests/fixtures/format-1.1/forest-v2-level3.bundle >/dev/null
"$modelctl" --registry "$reg" promote golden_forest production 1.0.0 >/dev/null
row=$(python3 -c 'print(",".join(str(round(0.05 * i, 2)) for i in range(20)))')
printf '{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP64","data":[%s]}]}' "$row" >"$out/row.json"
