# bash completion for kvplace (installed by `make install`)
_kvplace_names() { # $1: a kvplace command listing names; $2: an awk pattern of a section
    kvplace "$1" 2>/dev/null | awk -v sect="$2" '
        /^[A-Za-z]/ { on = (sect == "" || index($0, sect) > 0); next }
        on && /^  [a-z0-9]/ { print $1 }'
}

_kvplace() {
    local cur prev words cword
    _init_completion -n = 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    }
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in -*) ;; *) cmd=${words[i]}; break ;; esac
    done
    case $prev in
        --hw)
            COMPREPLY=($(compgen -W "$(_kvplace_names presets Hardware)" -f -- "$cur"))
            return ;;
        --model)
            COMPREPLY=($(compgen -W "$(_kvplace_names presets Model)" -f -- "$cur"))
            return ;;
        --set)
            compopt -o nospace 2>/dev/null
            local params
            params=$(kvplace params 2>/dev/null | awk '/^  [a-z]/ {print $1}')
            COMPREPLY=($(compgen -S = -W "$params" -- "$cur")); return ;;
        --policy)
            COMPREPLY=($(compgen -W "all $(_kvplace_names policies '')" -- "$cur")); return ;;
        --synthetic) COMPREPLY=($(compgen -W "low actual high" -- "$cur")); return ;;
        --trace|--config|--json|--csv|--sa-log|--checkpoint|--resume|-o|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --out) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --threads|--sa-budget|--query-heads) return ;;
    esac
    local scn="--hw --model --config --set --help" opts
    case $cmd in
        "")
            opts="run trace presets params policies study help --help --version"
            COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;
        run)
            opts="$scn --trace --synthetic --policy --threads --check --json --csv --sa-log"
            COMPREPLY=($(compgen -W "$opts --checkpoint --resume --quiet" -- "$cur")) ;;
        trace)
            local before=" ${words[*]:0:cword} "
            if [[ $before != *" gen "* && $before != *" info "* ]]; then
                COMPREPLY=($(compgen -W "gen info" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$scn --synthetic --output --quiet" -f -- "$cur"))
            fi ;;
        study)
            opts="sparsity variation hitrate batch accounting all $scn --out --trace --policy"
            opts="$opts --sa-budget --query-heads --threads --checkpoint --resume --quiet"
            COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;
        help) COMPREPLY=($(compgen -W "run trace presets params policies study" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "--help" -- "$cur")) ;;
    esac
}
complete -F _kvplace kvplace
