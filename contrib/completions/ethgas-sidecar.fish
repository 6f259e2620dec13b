# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ethgas_sidecar_global_optspecs
    string join \n h/help V/version
end

function __fish_ethgas_sidecar_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ethgas_sidecar_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ethgas_sidecar_using_subcommand
    set -l cmd (__fish_ethgas_sidecar_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -s V -l version -d 'Print version'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -f -a "run" -d 'Run the sidecar (the service)'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -f -a "check-config" -d 'Validate a config file and print the effective configuration, secrets redacted'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -f -a "status" -d 'Show whether the running sidecar holds a token, and why not'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -f -a "demo" -d 'Start the built-in mock ETHGas API and the sidecar in front of it (no account or network needed)'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_needs_command" -f -a "mock-api" -d 'Run only the built-in mock ETHGas API, to test programs offline'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand run" -s c -l config -d 'The configuration file' -r -F
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand check-config" -s c -l config -d 'The configuration file' -r -F
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand status" -s c -l config -d 'The configuration file whose `admin.listen` to ask' -r -F
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand status" -s i -l instance -d 'The instance NAME of ethgas-sidecar@.service to ask: reads `admin.listen` from /etc/ethgas-sidecar/NAME.toml (instead of --config)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand status" -l admin -d 'The admin listener to ask instead: IP:PORT, HOST:PORT or unix:/path' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand status" -l json -d 'Print the /readyz JSON as received, for scripts (the exit status still applies)'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand demo" -l listen -d 'Proxy address (falls back to a free port if taken)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand demo" -l admin -d 'Admin address (falls back to a free port if taken)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand demo" -l token-lifetime -d 'Lifetime of the mock\'s access tokens, short so refreshes show in the log (and not shorter than `auth.min_call_interval` allows)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand demo" -l auth -d 'The login to show: "password" (the documented API) or "wallet" (the live API\'s EIP-712 login, with a throwaway key)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand demo" -s h -l help -d 'Print help'
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l listen -d 'Address to listen on' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l token-lifetime -d 'Lifetime of the access tokens it issues' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l username -d 'The account it accepts' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l password -d 'The account\'s password' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l flavor -d '"documented" (username/password) or "live" (wallet login, as mainnet.app.ethgas.com)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -l address -d 'With --flavor live: the one wallet address that may log in (any, if not given)' -r
complete -c ethgas-sidecar -n "__fish_ethgas_sidecar_using_subcommand mock-api" -s h -l help -d 'Print help'
