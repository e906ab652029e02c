#!/usr/bin/env bash
# layering.sh: data flows one way (video -> encoder -> llm -> vlm -> apps, core under all, kernels
# under the numeric layers). Every `#include "DIR/..."` in each layer's sources must name a folder
# that layer may include. The allowed lists below are the "may include" column of the layer table
# in docs/architecture.md; the script also checks that the table still says the same, so the two
# cannot drift apart. The argument (the duovid binary, as for every CLI test) is not used.
#   bash tests/cli/layering.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
declare -A allow=(
  [core]="core"
  [kernels]="core kernels"
  [video]="core video"
  [encoder]="core kernels encoder"
  [llm]="core kernels llm"
  [vlm]="core kernels video encoder llm vlm"
  [hub]="core hub"
  [apps]="core kernels video encoder llm vlm hub apps"
)
fail=0
for layer in "${!allow[@]}"; do
  # the table row: | layer/ | may include | owns |  (own folder implied; "libc, cJSON" etc. ignored)
  row=$(grep -E "^\| $layer/ \|" docs/architecture.md | head -1 | cut -d'|' -f3)
  [ -n "$row" ] || { echo "FAIL docs/architecture.md has no row for $layer/"; fail=1; continue; }
  for dep in ${allow[$layer]}; do
    [ "$dep" = "$layer" ] && continue
    grep -qw -- "$dep" <<<"$row" || { echo "FAIL $layer/ may include $dep/ here but not in docs/architecture.md"; fail=1; }
  done
  for w in $(tr -c 'a-z\n' ' ' <<<"$row"); do
    case " core kernels video encoder llm vlm hub apps " in *" $w "*)
      grep -qw -- "$w" <<<"${allow[$layer]}" || { echo "FAIL docs/architecture.md lets $layer/ include $w/, this script does not"; fail=1; } ;;
    esac
  done
  while IFS= read -r hit; do
    dep=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$hit")
    case " core kernels video encoder llm vlm hub apps tests " in *" $dep "*) ;; *) continue ;; esac
    grep -qw -- "$dep" <<<"${allow[$layer]}" || { echo "FAIL $hit: $layer/ may not include $dep/"; fail=1; }
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z_]+/' "$layer" \
             --include='*.c' --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh')
done
[ $fail = 0 ] && echo "ok   every #include follows docs/architecture.md's layer table"
exit $fail
