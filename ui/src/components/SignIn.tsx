// Where reads need a token, the first 401 opens this form: the token (a
// static token of the catalog's configuration, or a JWT of the company's
// SSO) is kept for the browser tab's session and sent with every request.
import { useEffect, useState } from "react";
import { AUTH_REQUIRED, setToken, token } from "../api";

export function SignIn() {
  const [needed, setNeeded] = useState(false);
  const [value, setValue] = useState("");
  const held = token();
  useEffect(() => {
    const ask = () => setNeeded(true);
    window.addEventListener(AUTH_REQUIRED, ask);
    return () => window.removeEventListener(AUTH_REQUIRED, ask);
  }, []);
  if (!needed) return null;
  return (
    <section className="sign-in panel" aria-labelledby="sign-in-title" role="region">
      <h2 id="sign-in-title">Sign in to read the catalog</h2>
      <p>
        {held
          ? "The catalog refused the token of this session (wrong, expired or without the catalog.read scope)."
          : "This catalog needs a token to read it."}{" "}
        Paste an API token or a token of your organisation's sign-in; it is kept for this browser tab only.
      </p>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (!value.trim()) return;
          setToken(value.trim());
          window.location.reload();
        }}
      >
        <label htmlFor="api-token">API token</label>
        <input id="api-token" type="password" autoComplete="off" value={value} onChange={(e) => setValue(e.target.value)} />
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}

/** "Sign out" in the header while a token is held. */
export function SignOut() {
  if (!token()) return null;
  return (
    <button
      type="button"
      className="sign-out"
      onClick={() => {
        setToken(null);
        window.location.reload();
      }}
    >
      Sign out
    </button>
  );
}
