// Signing in with Cognito's SRP (USER_SRP_AUTH): the password is proved, never sent, and the app client allows no
// USER_PASSWORD_AUTH. The protocol is amazon-cognito-identity-js's (AWS's own library, pinned through npm and
// vendored by scripts/web_vendor.py); this module only adapts it to the page: tokens are handed back, never stored
// by the library (it would put them in localStorage), and a challenge the page cannot answer is an error.

import "./vendor/amazon-cognito-identity.min.js";

const { AuthenticationDetails, CognitoUser, CognitoUserPool } = self.AmazonCognitoIdentity;

/** The library caches tokens in a Storage; this one lives as long as one sign-in. */
function throwawayStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
    clear: () => items.clear(),
  };
}

/** Cognito refused these credentials (or this user): show its message as is. */
export class CredentialsRefused extends Error {}

const REFUSALS = ["NotAuthorizedException", "UserNotFoundException", "UserNotConfirmedException"];

/**
 * Sign in with SRP. Resolves to Cognito's AuthenticationResult fields (AccessToken, RefreshToken, IdToken, ExpiresIn);
 * rejects with CredentialsRefused for a wrong password or an unknown user, with an Error otherwise.
 */
export function srpSignIn({ userPoolId, clientId, endpoint, username, password }) {
  return new Promise((resolve, reject) => {
    const storage = throwawayStorage();
    const pool = new CognitoUserPool({ UserPoolId: userPoolId, ClientId: clientId, endpoint, Storage: storage });
    const user = new CognitoUser({ Username: username, Pool: pool, Storage: storage });
    user.setAuthenticationFlowType("USER_SRP_AUTH");
    const unsupported = (challenge) => () =>
      reject(new Error(`Cognito asks for ${challenge}, which this page does not support.`));
    user.authenticateUser(new AuthenticationDetails({ Username: username, Password: password }), {
      onSuccess(session) {
        const access = session.getAccessToken();
        resolve({
          AccessToken: access.getJwtToken(),
          RefreshToken: session.getRefreshToken().getToken(),
          IdToken: session.getIdToken().getJwtToken(),
          // Its lifetime, as Cognito's ExpiresIn: independent of how far this machine's clock is off.
          ExpiresIn: access.payload.exp - access.payload.iat,
        });
      },
      onFailure(error) {
        const message = error?.message || String(error);
        if (REFUSALS.includes(error?.code)) reject(new CredentialsRefused(message));
        else if (error?.code === "NetworkError" || error instanceof TypeError) reject(new Error(`Cannot reach the sign-in service (${message}).`));
        else reject(new Error(`Sign-in failed: ${message}`));
      },
      newPasswordRequired: unsupported("NEW_PASSWORD_REQUIRED"),
      mfaRequired: unsupported("SMS_MFA"),
      totpRequired: unsupported("SOFTWARE_TOKEN_MFA"),
      mfaSetup: unsupported("MFA_SETUP"),
      selectMFAType: unsupported("SELECT_MFA_TYPE"),
      customChallenge: unsupported("CUSTOM_CHALLENGE"),
    });
  });
}
